"""generated/ holds the catalog's and examples' kernels; it must match a fresh emission.

Regenerate with `python -m symflow generate` (the one documented command).
"""

from symflow.cli import generate


def test_generated_folder_is_up_to_date(repo_root, capsys):
    stale = generate(repo_root / "generated", check=True, repo=repo_root)
    diff = capsys.readouterr().out
    assert not stale, (
        f"{len(stale)} file(s) in generated/ are stale: {stale}. "
        f"Run `python -m symflow generate`.\n{diff[-4000:]}"
    )
