import sanitizeHtml from 'sanitize-html';

type Marked = { parse(src: string, opts?: { async?: false }): string };
let loading: Promise<Marked> | undefined;

/**
 * A job's step summary (Markdown written by the job) as HTML that is safe to show: rendered by
 * `marked`, then every tag, attribute and URL scheme not on a short allow-list removed by
 * `sanitize-html` (no scripts, no event handlers, no javascript: links, no images from elsewhere).
 */
export async function summaryToHtml(markdown: string): Promise<string> {
  loading ??= import('marked').then((m) => m.marked as unknown as Marked);
  const marked = await loading;
  const html = marked.parse(markdown, { async: false });
  return sanitizeHtml(html, {
    allowedTags: [
      'h1',
      'h2',
      'h3',
      'h4',
      'h5',
      'h6',
      'p',
      'ul',
      'ol',
      'li',
      'strong',
      'em',
      'code',
      'pre',
      'blockquote',
      'table',
      'thead',
      'tbody',
      'tr',
      'th',
      'td',
      'a',
      'hr',
      'br',
      'del',
      'details',
      'summary',
    ],
    // rel and target are Kiln's own (transformTags sets them on every link, over whatever the job wrote):
    // they must be allowed here too, or sanitize-html strips them after the transform.
    allowedAttributes: { a: ['href', 'rel', 'target'], th: ['align'], td: ['align'] },
    allowedSchemes: ['http', 'https'],
    transformTags: { a: sanitizeHtml.simpleTransform('a', { rel: 'noopener noreferrer nofollow', target: '_blank' }) },
  });
}
