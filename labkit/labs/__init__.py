"""Each lab's support code that students use but do not write: configs, runners, trial helpers (one module per lab)."""
