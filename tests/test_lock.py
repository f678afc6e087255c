"""One writer per workspace: a second writer gets a clear 'busy' error, never a corrupt catalogue."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import picsift_env, run_picsift, write_noise_jpeg

import picsift
from picsift.workspace.lock import WriterLock

HOLDER = textwrap.dedent("""
    import sys, time
    import picsift
    ws = picsift.open(sys.argv[1])
    with ws.writing():
        print("holding", flush=True)
        time.sleep(120)
""")


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    for i in range(3):
        write_noise_jpeg(tmp_path / "corpus" / f"{i}.jpg", seed=i)
    return tmp_path / "corpus"


@pytest.fixture
def holder(corpus: Path) -> Iterator[subprocess.Popen[str]]:
    """Another process that holds the workspace's writer lock until killed."""
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(corpus)], stdout=subprocess.PIPE,
                            text=True, env=picsift_env())
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "holding"
        yield proc
    finally:
        proc.kill()
        proc.wait(timeout=30)
        if proc.stdout:
            proc.stdout.close()


def test_scan_while_another_process_writes_raises_busy(corpus: Path, holder) -> None:
    ws = picsift.open(corpus)
    with pytest.raises(picsift.WorkspaceBusyError) as info:
        ws.scan(progress=False, workers=1)
    message = str(info.value)
    assert f"workspace is busy (pid {holder.pid})" in message
    assert str(ws.dir) in message
    assert info.value.pid == holder.pid
    assert isinstance(info.value, picsift.PicsiftError)
    # Nothing was written by the refused scan.
    assert ws.scalar("SELECT COUNT(*) FROM runs") == 0
    assert ws.scalar("SELECT COUNT(*) FROM files") == 0
    ws.close()


def test_cli_scan_while_busy_prints_one_line_and_exits_2(corpus: Path, holder) -> None:
    result = run_picsift("scan", corpus, "--no-progress", "--workers", "1")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: workspace is busy (pid ")
    assert f"(pid {holder.pid})" in lines[0]
    assert "Traceback" not in result.stderr + result.stdout


def test_lock_is_free_again_when_the_holder_dies(corpus: Path, holder) -> None:
    holder.send_signal(signal.SIGKILL)
    holder.wait(timeout=30)
    ws = picsift.open(corpus)
    summary = ws.scan(progress=False, workers=1)
    assert summary.images == 3
    ws.close()


def test_writer_lock_is_exclusive_and_reentrant_in_one_workspace(tmp_path: Path) -> None:
    first = WriterLock(tmp_path)
    second = WriterLock(tmp_path)
    with first:
        assert first.held
        assert (tmp_path / "writer.lock").read_text() == str(os.getpid())
        with pytest.raises(picsift.WorkspaceBusyError) as info:
            second.acquire()
        assert info.value.pid == os.getpid()
        assert not second.held
    assert not first.held
    with second:  # released: now it can be taken
        assert second.held

    ws = picsift.open(tmp_path / "corpus")
    with ws.writing():
        with ws.writing():  # re-entrant within one handle
            pass
        other = picsift.open(tmp_path / "corpus")
        with pytest.raises(picsift.WorkspaceBusyError), other.writing():
            pass
        other.close()
    ws.close()
