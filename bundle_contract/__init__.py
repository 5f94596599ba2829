"""The model bundle's contract: what the compile step writes and the app, the roles and the checks read.

Standard library only and owned by neither side, so ``compile/`` and ``app/`` never import each other and the
Pi can check a bundle before anything heavy is imported. A new bundle field or rule goes here first.
"""
