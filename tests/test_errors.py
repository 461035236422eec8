"""gpt2ja.errors: the error types sit on the ground floor, so the light modules stay light."""

import subprocess
import sys

from gpt2ja.errors import DumpError, NonFiniteLoss, UserError


def test_every_error_of_the_project_is_a_user_error():
    assert issubclass(DumpError, UserError) and issubclass(NonFiniteLoss, UserError)


def loaded_by(statement):
    """The top-level names of the modules a fresh interpreter holds after `statement`, beyond its own start."""
    code = ("import sys; before = set(sys.modules); " + statement + "; "
            "print(' '.join(sorted({m.split('.')[0] for m in set(sys.modules) - before})))")
    return set(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split())


def test_the_errors_the_rerun_protocol_and_the_dump_reader_import_only_the_standard_library():
    for module in ("gpt2ja.errors", "gpt2ja.rerun", "gpt2ja.dump"):
        third_party = loaded_by(f"import {module}") - set(sys.stdlib_module_names) - {"gpt2ja"}
        assert third_party == set(), module
    assert not loaded_by("import gpt2ja.dump") & {"transformers", "torch", "datasets", "numpy", "pyarrow"}


def test_the_reason_inside_a_wrapping_error_is_found_down_its_chain():
    from gpt2ja.errors import reason_inside
    reason = DumpError("the dump is cut")
    try:
        try:
            try:
                raise reason
            except DumpError as error:
                raise ValueError("a worker failed") from error
        except ValueError:
            raise RuntimeError("generation failed")  # chained as its context
    except RuntimeError as wrapped:
        assert reason_inside(wrapped) is reason
    assert reason_inside(RuntimeError("alone")) is None
