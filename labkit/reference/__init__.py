"""Instructor-only code that answers a lab's TODO (baselines the benchmarks train): never in the students' distribution.

``labkit release`` leaves this package out of ``dist/student`` (:data:`labkit.instructor.release.INSTRUCTOR_ONLY`),
so nothing a student can import solves a graded step. Scripts and benchmarks import it from the course repository.
"""
