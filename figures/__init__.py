"""labkit figures: load saved results -> compute a statistic -> draw, one consistent house style.

`figures.registry.FIGURES` lists every figure `lad figures` draws; `figures.style` is the shared
style (sizes, colours, names, PNG + PDF saving). Figures read result files and never train.
"""
