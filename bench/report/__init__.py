"""Everything presented, generated from the result store: reading runs back, leaderboards
(Markdown, LaTeX, HTML), figures, report.html, and the regression check against a reference run
(``bench compare``, ``bench baseline save``).

May import: every package below it (core, data, weights, perturbations, nn, run), never cli.
"""
