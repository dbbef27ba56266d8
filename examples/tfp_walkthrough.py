"""TensorFlow Probability's bijector walkthrough, every number reproduced through symflow.

Run: `python examples/tfp_walkthrough.py` (also part of `symflow demo`). The steps live in
`symflow/walkthrough.py` so that the demo and the tests run the very same code:

1. Normal(0, 1).log_prob(2.01) = -2.938989, directly and via Uniform + NormalCDF.
2. AffineScalar(0, 2): log_prob by the change of variables, and the transformed cdf.
3. Exponential(0.5) draws from Uniform draws through a declared y = -log(1 - u) / rate
   (symflow derives the inverse u = 1 - exp(-rate * y) and the log-det).
4. A declared PReLU (Piecewise forward) chained with Affine (FillTriangular scale and a
   rank-2 perturbation) over MultivariateNormalDiag(loc=(0, 0)): log_prob and sample.
"""

from symflow.walkthrough import main

if __name__ == "__main__":
    main()
