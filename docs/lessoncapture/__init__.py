"""The lesson's outputs: captured from the lab by `run`, pasted into docs/lesson.md by `blocks`."""
