"""Issue 22.13: on a CPU backend a large image is the cost (1024x1024 took ~50 s with no
hint): the Generate screen's status line says so, in one line. Pilot."""

from __future__ import annotations

import dataclasses

from distill_tui.generation import Job
from tests.gen_helpers import DIFFUSION_QUANT, MODEL_ID, TEXT_ENCODER_QUANT
from tests.test_generate_screen import status_text
from tests.test_snapshots_generate import PARAMS, make_app, ready_engine


async def _status_with(backend: str, size: int, width: int = 120) -> str:
    app = make_app()
    async with app.run_test(size=(width, 24)) as pilot:
        await pilot.pause()
        svc = app.generation
        ready_engine(app)
        svc.backend = backend
        svc.engine_state = "busy"
        params = dataclasses.replace(PARAMS, width=size, height=size)
        svc.job = Job(
            number=1,
            params=params,
            model_id=MODEL_ID,
            diffusion_quant=DIFFUSION_QUANT,
            text_encoder_quant=TEXT_ENCODER_QUANT,
            started=1.0,
        )
        svc._changed("job")
        await pilot.pause()
        return status_text(app)


async def test_cpu_backend_large_size_hints_that_size_is_the_cost():
    line = await _status_with("CPU", 1024)
    assert "1024x1024" in line and "512x512" in line, line
    narrow = await _status_with("CPU", 1024, width=80)
    assert "CPU: 512x512 ~4x faster" in narrow and "slow there" not in narrow, narrow
    assert len(line.splitlines()) == 1


async def test_no_hint_for_a_small_size_or_a_gpu():
    assert "512x512" not in await _status_with("CPU", 512)
    assert "512x512" not in await _status_with("CUDA", 1024)
