"""Leaf utilities: errors, progress bars, folder locks, atomic files. They import nothing else of convscope."""
