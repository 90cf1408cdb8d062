"The prepared GPU visit runs end to end at a tiny size on the CPU, so a visit to a GPU does not find its bugs."
import json, os, subprocess, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

def test_gpu_visit_tiny_on_cpu(tmp_path):
    "The prepared GPU visit's single-edit and batch phases run at a tiny size on the CPU and write their JSON (CPU seconds, not GPU figures)."
    env = dict(os.environ, OMP_NUM_THREADS='1', TINY='1', OUT=str(tmp_path/'out'))
    p = subprocess.run(['bash', 'bench/gpu_visit.sh', '--phases', 'bc', '--budget', '300'], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
    files = {f.name for f in (tmp_path/'out').iterdir()}
    assert {'visit.json', 'visit_b.json', 'visit_c.json'} <= files, files
    b, c = (json.loads((tmp_path/'out'/f'visit_{ph}.json').read_text()) for ph in 'bc')
    assert 'not GPU figures' in b['card'] and b['diffusers']['s'] > 0 and b['ours_default']['s'] > 0
    assert b['ours_fast']['same_edit'] and b['ours_fast']['vs_default']['pixels_max'] == 0   # on a CPU the frozen graphs give the default path's bits
    assert c['ours_batched'] and c['ours_default']['edits_per_s'] > 0
    assert c['batch_vs_single']['pixels_max'] <= 2                                       # the batch gives the single edit, up to rounding
