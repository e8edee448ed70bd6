"""tabcoder: an LLM writes the training code for a tabular task, a sandbox runs it, the harness grades it
on labels the code never sees, and the model reflects and iterates.

    import tabcoder
    result = tabcoder.run("path/to/task", model="local", iterations=4)
"""

from tabcoder.config import RunConfig
from tabcoder.errors import TabcoderError
from tabcoder.runner import Result, run
from tabcoder.task import Task, load_task

__all__ = ["run", "Result", "RunConfig", "Task", "load_task", "TabcoderError"]
__version__ = "0.1.0"
