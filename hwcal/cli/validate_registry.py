"""Validate a registry: every spec.json and calibration against the schemas and the naming rules.

Prints ``file: json_path: message`` for each error (every error, not only the first); exit 0 only
when everything is valid. A registry with nothing filed yet (empty, or not created) is valid.
"""

from __future__ import annotations

import argparse

from hwcal.cli.common import add_json_option, make_parser, print_json, registry_path
from hwcal.cli.entry import EXIT_FAIL, EXIT_OK, Tool, UsageError, say, tell
from hwcal.registry.layout import ENV_REGISTRY, default_registry
from hwcal.registry.validate import validate_registry

EXAMPLES = """
  python tools/validate_registry.py                        # the checkout's registry/
  python tools/validate_registry.py --registry /tmp/reg    # what .ci/run does after a calibration
  python tools/validate_registry.py /tmp/reg --json | jq '.errors[]'
"""


def build_parser(prog: str) -> argparse.ArgumentParser:
    parser = make_parser(prog, "Check every spec.json and calibration of a registry against the JSON Schemas and "
                               "the naming rules (file name and folders agree with the document's key). Exit 0 "
                               "only when everything is valid.", EXAMPLES)
    parser.add_argument("path", nargs="?", type=registry_path, metavar="PATH",
                        help="registry folder (same as --registry)")
    parser.add_argument("--registry", metavar="PATH", type=registry_path, default=None,
                        help=f"registry folder. Env {ENV_REGISTRY}. Default: the checkout's registry/ "
                             f"({default_registry()})")
    add_json_option(parser)
    return parser


def body(args: argparse.Namespace) -> int:
    if args.path is not None and args.registry is not None and args.path != args.registry:
        raise UsageError(f"two registries given: {args.path} and --registry {args.registry}; give one")
    root = args.path or args.registry or default_registry()
    report = validate_registry(root)
    if args.json:
        print_json({"registry": str(root), "valid": report.ok, "specs_checked": report.specs_checked,
                    "calibrations_checked": report.calibrations_checked, "errors": report.errors,
                    "notes": report.notes})
        return EXIT_OK if report.ok else EXIT_FAIL
    say(*report.errors)
    tell(*(f"note: {note}" for note in report.notes))
    verdict = "valid" if report.ok else f"{len(report.errors)} error(s)"
    (tell if report.ok else say)(f"{root}: {report.specs_checked} spec(s), {report.calibrations_checked} "
                                 f"calibration(s) checked: {verdict}")
    return EXIT_OK if report.ok else EXIT_FAIL


TOOL = Tool("validate_registry.py", build_parser, body, command="hwcal-validate")
main = TOOL.main
