"""Evaluation on the synthetic corpus: exact mouth measure, judge, sync model, metrics, report (issue #9)."""
