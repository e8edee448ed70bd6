"""tabcoder: an LLM writes the training code for a tabular task, a sandbox runs it, the harness grades it
on labels the code never sees, and the model reflects and iterates.

    import tabcoder
    result = tabcoder.run("path/to/task", model="local", time_budget="5m")
    result.predict(new_rows)                          # the delivered solution on new rows
    tabcoder.load("runs/20261201-120000-task").predict("new.csv")
"""

from tabcoder.config import RunConfig
from tabcoder.errors import TabcoderError
from tabcoder.prediction import Solution, load
from tabcoder.runner import Result, run
from tabcoder.task import Task, load_task

__all__ = ["run", "load", "Result", "RunConfig", "Solution", "Task", "load_task", "TabcoderError"]
__version__ = "0.1.0"
