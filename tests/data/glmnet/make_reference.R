# glmnet's default lambda path when nobs == nvars (lambda.min.ratio = 1e-4 there,
# 1e-2 only when nobs < nvars), for tests/test_elasticnet.py. Regenerate with:
#   Rscript tests/data/glmnet/make_reference.R   (Debian: r-cran-glmnet)
suppressMessages(library(glmnet))
set.seed(5)
for (shape in list(c(30, 30), c(25, 40))) {
  n <- shape[1]; p <- shape[2]
  x <- matrix(rbinom(n * p, 2, 0.3), n, p)
  y <- x[, 1] * 0.8 - x[, 2] * 0.5 + rnorm(n)
  fit <- glmnet(x, y, alpha = 0.5)
  tag <- sprintf("n%d_p%d", n, p)
  write.table(x, sprintf("%s_x.tsv", tag), sep = "\t", row.names = FALSE, col.names = FALSE)
  write.table(format(y, digits = 17), sprintf("%s_y.tsv", tag), quote = FALSE, row.names = FALSE, col.names = FALSE)
  write.table(format(fit$lambda, digits = 17), sprintf("%s_lambda.tsv", tag), quote = FALSE, row.names = FALSE, col.names = FALSE)
}
writeLines(c(R.version.string, paste("glmnet", packageVersion("glmnet"))), "versions.txt")
