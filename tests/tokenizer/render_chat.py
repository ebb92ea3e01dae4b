"""Reference chat renderings for the parity tests: a model's own Jinja chat template rendered
with Jinja2 as transformers renders it (trim_blocks, lstrip_blocks, loopcontrols, raise_exception,
strftime_now, tojson).

Usage: python3 render_chat.py cases.json out.json, where cases.json is
{"template": str, "bos_token": str, "eos_token": str,
 "cases": [{"messages": [{"role": str, "content": str}, ...], "add_generation_prompt": bool}, ...]}
and out.json gets one rendered string per case. enable_thinking is false (Qwen3's non-thinking
generation prompt).
"""
import datetime
import json
import sys

from jinja2.exceptions import TemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment


def raise_exception(message):
    raise TemplateError(message)


def strftime_now(fmt):
    return datetime.datetime.now().strftime(fmt)


def main():
    with open(sys.argv[1], encoding="utf-8") as f:
        spec = json.load(f)
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                        extensions=["jinja2.ext.loopcontrols"])
    env.filters["tojson"] = lambda x, indent=None, ensure_ascii=False: json.dumps(
        x, indent=indent, ensure_ascii=ensure_ascii)
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    template = env.from_string(spec["template"])
    out = [template.render(messages=case["messages"], add_generation_prompt=case["add_generation_prompt"],
                           bos_token=spec["bos_token"], eos_token=spec["eos_token"], enable_thinking=False)
           for case in spec["cases"]]
    with open(sys.argv[2], "w", encoding="utf-8") as f:
        json.dump(out, f)


if __name__ == "__main__":
    main()
