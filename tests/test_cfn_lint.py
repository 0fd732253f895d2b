"""cfn-lint finds no errors and no warnings in any synthesized template.

W3005 ("dependency already enforced by a GetAtt/Ref") is ignored: CDK adds explicit DependsOn
on purpose (for example a feature group on its role's policy, which the GetAtt on the role
alone does not cover), and the redundant edge is harmless.
"""

from __future__ import annotations

import pytest
from cfnlint.api import ManualArgs, lint_file

IGNORED_CHECKS = ["W3005"]


def test_template_passes_cfn_lint(synthesized_app, stack_key):
    if not synthesized_app.template_json(*stack_key).get("Resources"):
        pytest.skip("the stack defines no resources yet (a scaffold): nothing to lint")
    region = synthesized_app.stacks[stack_key].region
    matches = lint_file(
        synthesized_app.template_path(*stack_key),
        config=ManualArgs(regions=[region], ignore_checks=IGNORED_CHECKS),
    )
    problems = [f"{match.rule.id} {match.message} (line {match.linenumber})" for match in matches
                if match.rule.id[0] in "EW"]
    assert not problems, "\n".join(problems)
