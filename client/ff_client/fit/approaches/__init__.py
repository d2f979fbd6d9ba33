"""The registry of analysis approaches, in the order the table, report and JSON list them."""

from __future__ import annotations

from ff_client.fit.approaches import constrained, curves, isoflop, kaplan, parabola, parametric

APPROACHES = (isoflop.APPROACH, parabola.APPROACH, parametric.APPROACH, curves.APPROACH, kaplan.APPROACH,
              constrained.APPROACH)
