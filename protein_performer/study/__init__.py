"""Studies of a training sweep: held-out perplexity with CIs, BLOSUM beside its random-init
null, FAVOR+ approximation error; one report (:func:`report.run_study`)."""
