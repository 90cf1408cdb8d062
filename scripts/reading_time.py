"""Reading time of notebooks, the lessons' measure: 200 words a minute of markdown prose, 4 s a non-blank code line, all cells.

    python scripts/reading_time.py nbs/0*.ipynb
"""
import json, sys, re
for p in sys.argv[1:]:
    nb = json.load(open(p)); words = lines = 0
    for c in nb['cells']:
        s = ''.join(c['source'])
        if c['cell_type'] == 'markdown': words += len(s.split())
        elif c['cell_type'] == 'code': lines += sum(1 for l in s.splitlines() if l.strip())
    m = words/200 + lines*4/60
    print(f'{p}: {words} words, {lines} code lines -> {m:.1f} min')
