import { test } from 'node:test';
import assert from 'node:assert/strict';
import { summaryToHtml } from './markdown-html';

test('every link of a summary gets rel="noopener noreferrer nofollow" and opens in a new tab, whatever the job wrote', async () => {
  const html = await summaryToHtml(
    '[a](https://example.com/a) and <a href="https://example.com/b" rel="opener" target="_self">b</a> and <https://example.com/c>',
  );
  const links = [...html.matchAll(/<a [^>]*>/g)].map((m) => m[0]);
  assert.equal(links.length, 3, html);
  for (const a of links) {
    assert.match(a, /rel="noopener noreferrer nofollow"/, a);
    assert.match(a, /target="_blank"/, a);
    assert.doesNotMatch(a, /opener"|_self/, a);
  }
});

test('scripts, handlers and javascript: links are still removed', async () => {
  const html = await summaryToHtml('<script>alert(1)</script><a href="javascript:alert(1)" onclick="x()">x</a><img src="https://e/x.png">');
  assert.doesNotMatch(html, /script|onclick|javascript:|<img/i, html);
});
