"""The jinja2 environment for templates/<target>/*.j2."""

from __future__ import annotations

from functools import cache

from ..resources import templates_dir


@cache
def _environment():
    import jinja2

    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(templates_dir())),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,
    )


def render(name: str, context) -> str:
    """Render a template with a context object (a dataclass) or a dict."""
    if not isinstance(context, dict):
        context = {k: getattr(context, k) for k in context.__dataclass_fields__}
    return _environment().get_template(name).render(**context)
