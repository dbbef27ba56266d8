"""Runtime: the kernel cache and loader, bound bijectors, and the pipeline driver."""
