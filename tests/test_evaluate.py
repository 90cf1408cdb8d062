"""The evaluation shared between processes with `accelerate` gives exactly the numbers of one process."""
import json, os, subprocess, sys
import pytest

ARGS = ['--full', '--n', '4', '--bs', '2', '--steps', '4', '--stages', 'main,sdedit,mask_rules', '--methods', 'ours,diffusers',
        '--sdedit-r', '0.7', '--sweep-n', '2']

def _run(*args):
    env = {**os.environ, 'OMP_NUM_THREADS': '1', 'HF_HUB_OFFLINE': '1'}
    p = subprocess.run([sys.executable, '-m', 'diffedit.evaluate', *args], capture_output=True, text=True, env=env, timeout=600)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-4000:]

def _scores(rows):
    "The rows as text, seconds aside (they differ from run to run; NaN compares equal as text)."
    return [json.dumps({k: v for k, v in r.items() if k != 'seconds'}, sort_keys=True) for r in rows]

def test_two_processes_give_the_single_process_numbers(tmp_path):
    _run(*ARGS, '--out', str(tmp_path/'one.json'))
    _run(*ARGS, '--processes', '2', '--out', str(tmp_path/'two.json'))
    one, two = (json.loads((tmp_path/f).read_text()) for f in ('one.json', 'two.json'))
    assert (one['meta']['processes'], two['meta']['processes']) == (1, 2)
    assert [len(one[k]) for k in ('main', 'sdedit', 'sdedit_sweep')] == [8, 4, 10]
    for k in ('main', 'sdedit', 'sdedit_sweep', 'mask_rules'):
        assert _scores(two[k]) == _scores(one[k]), k

def test_processes_need_full():
    from diffedit.evaluate import main
    with pytest.raises(SystemExit): main(['--processes', '2'])
    with pytest.raises(SystemExit): main(['--full', '--processes', '0'])
