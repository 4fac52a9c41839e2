"""bench/report.py turns Google Benchmark JSON into RESULTS.md's tables."""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import report  # noqa: E402

SAMPLE = os.path.join(HERE, "testdata", "sample_benchmarks.json")


class ReportTest(unittest.TestCase):

    def setUp(self):
        with open(SAMPLE) as f:
            self.results, self.context = report.load([json.load(f)])

    def test_medians_win_and_failed_runs_are_left_out(self):
        self.assertEqual(self.results["BM_EvalBodyCompare/256"]["real_time"],
                         100.0)
        self.assertNotIn("BM_Mosquitto/qos:0", self.results)
        # Suffixes go; a thread count other than one stays.
        self.assertIn("BM_Latency", self.results)
        self.assertIn("BM_Append/power/256/1/threads:16", self.results)

    def test_peer_table_has_ratios_from_the_same_run(self):
        table = report.peer_table(self.results)
        # 600 ns for SQLite (time unit us) against 100 ns: 6x.
        self.assertIn(
            "| Route language | $body.temperature > 50, 256 B body | 100 ns "
            "| SQLite json_extract | 600 ns | **6.00×** faster |", table)
        self.assertIn("**1.50×** faster", table)  # 60 k/s vs 40 k/s
        # Pairs without both sides are not shown.
        self.assertNotIn("mosquitto", table)

    def test_markdown_sections(self):
        text = report.markdown(self.results, self.context)
        self.assertIn("| 10 | 2 M/s | 500 k/s |", text)
        self.assertIn("| router, offered at half its peak | 12.5 µs | 250 µs "
                      "| 1.5 ms |", text)
        self.assertIn("| power | 256 B | 1 | 16 | 60 k/s | 40 k/s |", text)
        self.assertIn("load average 0.50, 0.40, 0.30", text)
        self.assertNotIn("![", text)  # no charts asked for

    def test_command_line_writes_results_without_charts(self):
        raw = tempfile.mkdtemp()
        try:
            shutil.copy(SAMPLE, raw)
            subprocess.check_call([
                sys.executable,
                os.path.join(HERE, "report.py"), "--raw", raw, "--out", raw,
                "--no-charts"
            ])
            with open(os.path.join(raw, "RESULTS.md")) as f:
                self.assertIn("**6.00×** faster", f.read())
        finally:
            shutil.rmtree(raw)


if __name__ == "__main__":
    unittest.main()
