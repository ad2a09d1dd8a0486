"""Training over HTTP: datasets, training and jobs, the preprocessing preview. Views validate, call one service, serialize."""
