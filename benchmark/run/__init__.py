"""Runners on top of the flow: a claim session (extract, evaluate, record, report), cross-model claims, consistency across probe sets, the calibration worker pool."""
