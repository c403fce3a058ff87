"""The site's tables of a calibration's model layers: convolutions, conv+BN+ReLU, attention and fused ops,
each layer's figures, what ran it and its efficiency against its ceiling, and what was not timed with why."""

from __future__ import annotations

from typing import Any

from hwcal.site.html import esc, num, pct, table

SECTIONS = (("conv", "Convolutions"), ("conv_bn_relu", "conv + BN + ReLU (eval)"), ("attention", "Attention (SDPA)"),
            ("fused_ops", "Norms, softmax, activations"))


def _shape(rec: dict[str, Any]) -> str:
    if "k" in rec:
        g = f" g{rec['groups']}" if rec.get("groups", 1) > 1 else ""
        return f"{rec['n']}×{rec['c']}×{rec['h']}×{rec['w']} → {rec['k']} {rec['r']}×{rec['s']}/{rec['stride']}{g}"
    if "heads" in rec:
        return (f"{rec['batch']}×{rec['heads']} q{rec['seq_q']} k{rec['seq_k']} d{rec['head_dim']}"
                + (" causal" if rec.get("causal") else ""))
    return f"{rec.get('rows')}×{rec.get('cols')}"


def _row(rec: dict[str, Any]) -> list[str]:
    ran = rec.get("algorithm") or rec.get("path") or ""
    if rec.get("default_backend"):
        ran = f"default: {rec['default_backend']}"
    if rec.get("heuristic_time_ratio") is not None:
        ran += f" · heuristic ×{rec['heuristic_time_ratio']:.3g}"
    if rec.get("time_vs_conv_alone") is not None:
        ran += f" · ×{rec['time_vs_conv_alone']:.3g} of the conv alone"
    return [esc(rec.get("name")), esc(rec.get("precision")), esc(rec.get("layout")), esc(rec.get("variant")),
            esc(_shape(rec)), num(rec.get("gflops_best")) if rec.get("gflops_best") is not None else "-",
            num(rec.get("gbps_best")), esc(f"{rec.get('bound')} ({rec.get('tier')})"), pct(rec.get("efficiency")),
            num((rec.get("time_s") or {}).get("min", 0) * 1e6), esc(ran)]


def layers_html(doc: dict[str, Any]) -> str | None:
    """Tables of every model-layer section the calibration has; None when it has none."""
    out = []
    for key, title in SECTIONS:
        section = doc.get(key)
        if not isinstance(section, dict):
            continue
        results = [r for r in section.get("results") or [] if isinstance(r, dict)]
        if results:
            out.append(table(f"{title} ({len(results)}, grid {section.get('grid')})",
                             ["layer", "precision", "layout", "variant", "shape", "GFLOPS best", "GB/s best",
                              "bound (tier)", "efficiency", "best (µs)", "what ran"],
                             [_row(r) for r in results], numeric=(5, 6, 8, 9)))
        skipped = [s for s in section.get("not_timed") or [] if isinstance(s, dict)]
        if skipped:
            out.append(table(f"{title}: not timed", ["precision", "variant", "status", "reason"],
                             [[esc(s.get("precision") or "all"), esc(s.get("variant")), esc(s.get("status")),
                               esc(s.get("reason"))] for s in skipped]))
        if results or skipped:
            counting = section.get("counting") or {}
            sources = "; ".join(f"{k}: {v}" for k, v in (section.get("sources") or {}).items())
            out.append(f'<p class="note">FLOPs: {esc(counting.get("flops"))}. Bytes: {esc(counting.get("bytes"))}. '
                       f'{esc(section.get("method"))} Sources: {esc(sources) or "-"}.</p>')
    return "".join(out) or None
