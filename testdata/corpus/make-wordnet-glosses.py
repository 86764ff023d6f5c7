import json, sys
out = []
pos_name = {'n': 'noun', 'v': 'verb', 'a': 'adjective', 's': 'adjective', 'r': 'adverb'}
for f, step in [('noun', 20), ('verb', 10), ('adj', 10), ('adv', 5)]:
    i = 0
    for line in open('/usr/share/wordnet/data.' + f, encoding='latin-1'):
        if line.startswith('  '):
            continue
        i += 1
        if i % step:
            continue
        head, _, gloss = line.partition('|')
        p = head.split()
        off, ss = p[0], p[2]
        n = int(p[3], 16)
        words = [p[4 + 2*j].replace('_', ' ') for j in range(n)]
        words = [w.split('(')[0] for w in words]
        title = words[0]
        text = gloss.strip()
        if len(words) > 1:
            text = 'Synonyms: ' + ', '.join(words[1:]) + '. ' + text
        text = '(' + pos_name[ss] + ') ' + text
        out.append({'id': 'wn:%s-%s' % (off, ss), 'contents': '"%s"\n%s' % (title, text)})
with open('wordnet-glosses.jsonl', 'w') as w:
    for r in out:
        w.write(json.dumps(r, ensure_ascii=False) + '\n')
print(len(out))
