"""``python -m protein_performer.train``: the same as ``protein-performer-train``.

Lightning's DDP launcher relaunches ranks > 0 with ``python -m protein_performer.train``, so
this module must stay a plain entry point.
"""

from protein_performer.cli.train import main

if __name__ == "__main__":
    main()
