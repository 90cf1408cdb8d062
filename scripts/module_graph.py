"""Draw the package's module graph: one box per module of diffedit/, one arrow per import (top-level or inside a function), laid out
in layers so that every arrow points down to the layer a module builds on.

    python scripts/module_graph.py                          # the package as it is -> nbs/images/modules.png
    python scripts/module_graph.py --rev REV -o FILE.png    # the package at a git revision
"""
import argparse, ast, subprocess
from pathlib import Path

ROOT = Path(__file__).parent.parent
FRONT = ('cli', 'app')                                                   # the front ends, drawn in their own colour

def sources(rev=None):
    "{module: source} of diffedit/*.py in the working tree, or at git revision `rev`."
    if rev is None: return {p.stem: p.read_text() for p in sorted((ROOT/'diffedit').glob('*.py'))}
    names = subprocess.run(['git', 'ls-tree', '--name-only', rev, 'diffedit/'], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    return {Path(n).stem: subprocess.run(['git', 'show', f'{rev}:{n}'], cwd=ROOT, capture_output=True, text=True, check=True).stdout
            for n in names if n.endswith('.py')}

def graph(src):
    "{module: the package's modules it imports}, leaving out `__init__` and nbdev's index."
    mods = {m for m in src if not m.startswith('_')}; g = {}
    for m in mods:
        deps = set()
        for n in ast.walk(ast.parse(src[m])):
            if isinstance(n, ast.ImportFrom):
                if n.level == 1: deps |= {n.module.split('.')[0]} if n.module else {a.name for a in n.names}
                elif (n.module or '').startswith('diffedit.'): deps.add(n.module.split('.')[1])
                elif n.module == 'diffedit': deps |= {a.name for a in n.names}
            elif isinstance(n, ast.Import): deps |= {a.name.split('.')[1] for a in n.names if a.name.startswith('diffedit.')}
        g[m] = (deps & mods) - {m}
    return g

def reach(g, a):
    "The modules `a` imports, directly or through others."
    seen, todo = set(), list(g[a])
    while todo:
        x = todo.pop()
        if x not in seen: seen.add(x); todo += g[x]
    return seen

def cycles(g):
    "The modules that sit on an import circle."
    return {m for m in g if m in reach(g, m)}

def layers(g):
    "Each module's layer: 0 for those that import nothing of the package, else one more than the highest it imports (circles broken)."
    level = {}
    def lv(m, path=()):
        if m in level: return level[m]
        if m in path: return 0
        level[m] = v = 1 + max((lv(d, path + (m,)) for d in g[m]), default=-1)
        return v
    for m in g: lv(m)
    return level

def draw(g, path, title):
    import matplotlib; matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    lv, bad = layers(g), cycles(g); rows = {}
    for m in sorted(g, key=lambda m: (lv[m], m)): rows.setdefault(lv[m], []).append(m)
    pos = {m: ((i + 1)/(len(ms) + 1), l) for l, ms in rows.items() for i, m in enumerate(ms)}
    fig, ax = plt.subplots(figsize=(11, 1.1*(max(rows) + 2)))
    for m, deps in g.items():
        for d in deps:
            circle = m in reach(g, d)                                      # the import is part of a circle
            ax.annotate('', xy=pos[d], xytext=pos[m], arrowprops=dict(arrowstyle='->', color='crimson' if circle else 'grey', lw=1.6 if circle else 0.7,
                        alpha=0.9 if circle else 0.45, shrinkA=12, shrinkB=12, connectionstyle='arc3,rad=0.08'))
    for m, (x, y) in pos.items():
        fc = '#ffd7d7' if m in bad else '#d7e8ff' if m in FRONT else '#eeeeee'
        ax.text(x, y, m, ha='center', va='center', fontsize=10, bbox=dict(boxstyle='round,pad=0.35', fc=fc, ec='crimson' if m in bad else 'black', lw=0.8))
    ax.set_xlim(0, 1); ax.set_ylim(-0.6, max(rows) + 0.6); ax.axis('off')
    ax.set_title(title + (f"   (red: {len(bad)} modules on import circles)" if bad else "   (no import circle)"), fontsize=11)
    fig.text(0.01, 0.01, "each arrow: an import; bottom: modules that import nothing of the package; blue: the front ends", fontsize=8, color='dimgrey')
    fig.tight_layout(); fig.savefig(path, dpi=110); plt.close(fig)
    return lv, bad

if __name__ == '__main__':
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--rev', help="a git revision (default: the working tree)")
    p.add_argument('-o', '--out', default=str(ROOT/'nbs'/'images'/'modules.png'))
    a = p.parse_args()
    g = graph(sources(a.rev)); lv, bad = draw(g, a.out, f"diffedit's modules{' at ' + a.rev if a.rev else ''}")
    print(a.out, f"{len(g)} modules, {sum(map(len, g.values()))} imports, {len(bad)} on circles: {sorted(bad)}")
