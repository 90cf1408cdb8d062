// Search for the documentation site: filters search.json (one entry per page section, written by scripts/docs.py)
// by every word typed, titles first, and lists the first matches under the search box.
(() => {
  const box = document.getElementById('search'), list = document.getElementById('search-results');
  if (!box || !list) return;
  let index = null;
  const load = () => index || (index = fetch('search.json').then(r => r.json()));
  const show = async () => {
    const words = box.value.toLowerCase().split(/\s+/).filter(Boolean);
    list.replaceChildren();
    if (!words.length) { list.hidden = true; return; }
    const hits = (await load()).map(e => {
      const title = (e.page + ' ' + e.title).toLowerCase(), text = e.text.toLowerCase();
      if (!words.every(w => title.includes(w) || text.includes(w))) return null;
      return [words.filter(w => e.title.toLowerCase().includes(w)).length, e];
    }).filter(Boolean).sort((a, b) => b[0] - a[0]).slice(0, 12);
    for (const [, e] of hits) {
      const li = document.createElement('li'), a = document.createElement('a');
      a.href = e.href; a.textContent = e.title;
      const small = document.createElement('small'); small.textContent = e.page;
      a.append(small); li.append(a); list.append(li);
    }
    if (!hits.length) { const li = document.createElement('li'); li.className = 'none'; li.textContent = 'No match'; list.append(li); }
    list.hidden = false;
  };
  box.addEventListener('focus', load, { once: true });
  box.addEventListener('input', show);
})();
