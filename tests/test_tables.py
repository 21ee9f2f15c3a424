"""Result tables (gankd_utils.tables): a lead table that fits a screen and the full table beside it."""
import csv

from gankd_utils import tables

ROWS = [{"model": "a", "family": "f", "params": 1000, "mb_fp32": 0.004, "compression_x": 12.0,
         "fid500_mnistcls": 1.23456, "kid500_mnistcls": 0.01, "acc500_mnistcls": None, "macs_m": 3.0,
         "cpu_latency_ms_b1": 0.5, "cpu_img_per_s": 900.0},
        {"model": "b", "family": "f", "params": 10, "mb_fp32": 0.00004, "compression_x": None,
         "fid500_mnistcls": 2.0, "kid500_mnistcls": 0.02, "acc500_mnistcls": 0.5, "macs_m": 0.1,
         "cpu_latency_ms_b1": 0.25, "cpu_img_per_s": 1800.0}]


def test_lead_columns_in_report_order():
    assert tables.lead_columns(ROWS) == ["model", "params", "compression_x", "fid500_mnistcls", "kid500_mnistcls",
                                         "acc500_mnistcls", "cpu_latency_ms_b1"]
    assert tables.lead_columns([]) == []
    assert tables.lead_columns(ROWS, lead=("model", r"mb_\w+")) == ["model", "mb_fp32"]


def test_write_table_writes_lead_and_full_files(tmp_path):
    csv_path, md_path = tables.write_table(ROWS, tmp_path / "table")
    assert (csv_path, md_path) == (tmp_path / "table.csv", tmp_path / "table.md")
    lead = list(csv.DictReader(csv_path.open()))
    assert list(lead[0]) == tables.lead_columns(ROWS)
    assert lead[1]["compression_x"] == "" and lead[0]["acc500_mnistcls"] == ""
    md = md_path.read_text()
    assert md.splitlines()[0] == "| " + " | ".join(tables.lead_columns(ROWS)) + " |"
    assert "| a | 1000 | 12 | 1.235 | 0.01 | n/a | 0.5 |" in md and "family" not in md
    full_csv, full_md = tmp_path / "table_full.csv", tmp_path / "table_full.md"
    assert full_csv.read_text().splitlines()[0] == ",".join(ROWS[0])  # every column, in the rows' order
    assert "family" in full_md.read_text() and "cpu_img_per_s" in full_md.read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["table.csv", "table.md", "table_full.csv", "table_full.md"]


def test_narrow_tables_are_written_once(tmp_path):
    rows = [{"model": "a", "fid500_mnistcls": 1.23456, "acc": None}, {"model": "b", "fid500_mnistcls": 2.0, "acc": 0.5}]
    csv_path, md_path = tables.write_table(rows, tmp_path / "t", lead=None)
    assert csv_path.read_text().splitlines()[0] == "model,fid500_mnistcls,acc"
    md = md_path.read_text()
    assert "| a | 1.235 | n/a |" in md and "fid500_mnistcls" in md.splitlines()[0]
    only_lead = [{"model": "a", "params": 3}]
    tables.write_table(only_lead, tmp_path / "u")  # nothing to drop: no _full table
    assert not (tmp_path / "t_full.csv").exists() and not (tmp_path / "u_full.md").exists()
    assert (tmp_path / "u.md").read_text().splitlines()[2] == "| a | 3 |"


def test_markdown_table():
    assert tables.markdown_table([]) == "(no rows)\n"
    md = tables.markdown_table([{"a": 1.0 / 3, "b": "x", "c": ""}], floatfmt="{:.2f}")
    assert md == "| a | b | c |\n|---|---|---|\n| 0.33 | x | n/a |\n"
    assert tables.markdown_table([{"a": 1, "b": 2}], columns=["b"]) == "| b |\n|---|\n| 2 |\n"


def test_a_note_some_rows_leave_out_is_blank_there_while_a_missing_number_reads_n_a():
    # evaluation.kd_gap_closed: a note only on the pairs that have no share
    gaps = [{"student": "a_kd", "gap_closed": 0.5}, {"student": "b_kd", "gap_closed": None,
                                                     "note": "teacher no better than scratch"}]
    assert tables.markdown_table(gaps).splitlines()[2:] == ["| a_kd | 0.5 |  |",
                                                            "| b_kd | n/a | teacher no better than scratch |"]


def test_rows_with_different_keys_keep_every_column(tmp_path):
    rows = [{"model": "u", "fid": 1.0}, {"model": "c", "fid": 2.0, "acc": 0.5}]
    assert tables.columns_of(rows) == ["model", "fid", "acc"]
    csv_path, md_path = tables.write_table(rows, tmp_path / "t", lead=None)
    assert csv_path.read_text().splitlines()[0] == "model,fid,acc"
    assert "| u | 1 | n/a |" in md_path.read_text()


def test_lead_says_how_many_seeds_a_row_averages_and_what_it_leaves_out():
    rows = [{"model": "a", "family": "f", "seeds": 3, "params": 10, "fid500_mnistcls": 1.0,
             "note": "fid500_mnistcls: 2 of 3 seeds"}, {"model": "t", "family": "f", "seeds": 1, "params": 99}]
    assert tables.lead_columns(rows) == ["model", "seeds", "params", "fid500_mnistcls", "note"]
    md = tables.markdown_table(rows, columns=tables.lead_columns(rows))
    assert "| a | 3 | 10 | 1 | fid500_mnistcls: 2 of 3 seeds |" in md and "| t | 1 | 99 | n/a |  |" in md
