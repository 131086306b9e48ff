import type { IncomingMessage, ServerResponse } from 'node:http';

/**
 * The pages (src/ui) are plain files from this origin: no inline script or style, no CDN, no frame.
 * Everything the server answers (pages, API, errors) gets this policy, so a JSON or text answer
 * opened in a browser cannot run anything either.
 */
export const CONTENT_SECURITY_POLICY = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self'",
  "connect-src 'self'",
  "font-src 'self'",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join('; ');

/** The OpenAPI page (/api/docs, Swagger UI) writes inline styles and draws data: images; its scripts are files. */
export const DOCS_CONTENT_SECURITY_POLICY = CONTENT_SECURITY_POLICY.replace("style-src 'self'", "style-src 'self' 'unsafe-inline'").replace(
  "img-src 'self'",
  "img-src 'self' data:",
);

export const SECURITY_HEADERS: Readonly<Record<string, string>> = {
  'X-Frame-Options': 'DENY',
  'X-Content-Type-Options': 'nosniff',
  'Referrer-Policy': 'no-referrer',
  'Cross-Origin-Opener-Policy': 'same-origin',
  'Cross-Origin-Resource-Policy': 'same-origin',
};

/** Middleware: the security headers on every answer, set before any route or static file answers. */
export function securityHeaders(req: IncomingMessage, res: ServerResponse, next: () => void): void {
  for (const [name, value] of Object.entries(SECURITY_HEADERS)) res.setHeader(name, value);
  const path = (req.url ?? '').split('?')[0];
  const docs = path === '/api/docs' || path.startsWith('/api/docs/');
  res.setHeader('Content-Security-Policy', docs ? DOCS_CONTENT_SECURITY_POLICY : CONTENT_SECURITY_POLICY);
  next();
}
