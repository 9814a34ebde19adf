"""The sign-in form (pure HTML): one password field for ``OPS_TOKEN``, the CSRF token, where to go after."""

from __future__ import annotations

import html

__all__ = ["SIGNIN_CSS", "render_signin"]

SIGNIN_CSS = (
    "body{font:15px/1.45 system-ui,sans-serif;margin:0;color:#1f2328}"
    "header{background:#24292f;color:#fff;padding:.6rem 1rem}h1{font-size:1.1rem;margin:0}"
    "main{padding:1rem;max-width:28rem}label{display:flex;flex-direction:column;gap:.2rem;color:#57606a}"
    "input,button{font:inherit;padding:.35rem .5rem}form{display:flex;flex-direction:column;gap:.7rem}"
    "button{border:1px solid #1f883d;background:#1f883d;color:#fff;border-radius:6px}"
    ".note{background:#fff8c5;border:1px solid #d4a72c;padding:.3rem .6rem;border-radius:4px}"
)


def render_signin(*, app_id: str, next_path: str, csrf: str, message: str | None = None) -> str:
    """The sign-in page; ``message`` says why the last attempt failed (never what was typed)."""
    note = f'<p class="note">{html.escape(message)}</p>' if message else ""
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>lunch-streams · sign in</title><style>{SIGNIN_CSS}</style></head><body>"
        f"<header><h1>lunch-streams · {html.escape(app_id)}</h1></header><main>{note}"
        '<form method="post" action="/signin/">'
        '<label>OPS_TOKEN<input type="password" name="token" required autocomplete="current-password" autofocus>'
        "</label>"
        f'<input type="hidden" name="next" value="{html.escape(next_path)}">'
        f'<input type="hidden" name="csrf" value="{html.escape(csrf)}">'
        "<button>Sign in</button></form></main></body></html>"
    )
