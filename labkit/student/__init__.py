"""The student's tools: see what the grader will give, write the report, pack the hand-in.

* :mod:`~labkit.student.handin`: what a hand-in holds and lacks (its lab, release, model files, open TODOs);
* :mod:`~labkit.student.pack`: ``labkit pack``, the zip the grader takes;
* :mod:`~labkit.student.report`: ``labkit report``, the written report as one HTML page;
* :mod:`~labkit.student.check`: ``labkit check``, the grader's result for one notebook;
* :mod:`~labkit.student.selfcheck`: the same from the notebook's last cell (skipped when headless).
"""
