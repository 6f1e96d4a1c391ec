"""Results as DICOM: SEG masks and TID 1500 Structured Reports (see docs/results.md)."""
