"""Feature code runs in the sandbox: the known bypasses of CAAFE's AST whitelist (a built-in reached through
`__import__` / `getattr`, or passed as an argument to `apply` / `map`) run, and meet a wall: no file
outside the workspace changes, no connection is made, no process starts, the labels stay unread."""

from __future__ import annotations

import pytest

from tabcoder.backends import ScriptedBackend
from tabcoder.caafe import run_caafe
from tabcoder.prompting import fence
from tabcoder.sandbox import LocalSandbox

from caafe_helpers import FAST, make_task


def test_whitelist_bypasses_do_nothing_outside_the_workspace(tmp_path, tcp_server):
    task = make_task(tmp_path / "task", "binary", rows=60)
    outside = tmp_path / "outside"
    outside.mkdir()
    port = tcp_server.getsockname()[1]
    attacks = {
        "getattr-import": f"getattr(__import__('os'), 'system')('touch {outside}/system')",
        "apply-eval": f"df['x'] = pd.Series(['__import__(\"os\").system(\"touch {outside}/eval\")'] * len(df))"
                      ".apply(eval)",
        "map-exec": f"list(map(exec, [\"open('{outside}/exec', 'w').write('pwned')\"]))",
        "builtins-socket": f"__import__('builtins').__import__('socket').create_connection(('127.0.0.1', {port}), 2)",
        "subprocess": f"__import__('subprocess').run(['touch', '{outside}/subprocess'])",
        "ctypes": f"__import__('ctypes').CDLL(None).system(b'touch {outside}/ctypes')",
        "read-labels": f"df['leak'] = pd.read_csv('{task.source / 'train.csv'}')['y']",
        "signal-parent": "__import__('os').kill(__import__('os').getppid(), 0)",
    }
    replies = [fence(f"{code}\ndf['x'] = 1") for code in attacks.values()]
    result = run_caafe(task, task.train, backend=ScriptedBackend(replies), sandbox=LocalSandbox(),
                       n_features=len(replies), settings=FAST, workdir=tmp_path / "caafe")
    for name, proposal in zip(attacks, result.proposals):
        assert proposal.error is not None and "PermissionError" in proposal.error, (name, proposal.error)
        assert not proposal.kept
    assert list(outside.iterdir()) == []
    with pytest.raises(BlockingIOError):
        tcp_server.accept()  # nobody connected
    assert result.feature_code.count("df[") == 0  # nothing was accepted
