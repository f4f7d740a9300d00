"""FASTA in and out: ``reading`` (read_fasta, load_proteins, iter_filtered_blocks), the block
parser ``blocks`` over ``input`` (plain or gzip), ``filters`` (lengths, duplicates via ``digests``),
``options`` (ReadOptions), ``report`` (errors and counts), ``accessions``, ``writer``."""
