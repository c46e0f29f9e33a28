"""The FE does not load polars: it validates load specs with the row plan (about 45 MB of resident
memory saved on every FE; the BEs, which map loads, load it)."""

from __future__ import annotations

import subprocess
import sys


def test_the_fe_process_does_not_import_polars():
    code = "import sys, fe.main; print('polars' in sys.modules, 'pyarrow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.split() == ["False", "True"], out.stdout + out.stderr


def test_the_vectorized_plan_is_still_importable_from_the_package():
    from common.loadformat import LoadPlan, compile_load
    from common.loadformat.plan import LoadPlan as Direct

    assert LoadPlan is Direct and callable(compile_load)
