"""The instructor's tools: release student notebooks, run the reference notebooks, grade hand-ins."""
