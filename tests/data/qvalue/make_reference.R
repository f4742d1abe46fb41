# Reference q-values for tests/test_qvalue.py, from R's qvalue package (the GTEx /
# tensorQTL implementation). Regenerate with:
#   Rscript tests/data/qvalue/make_reference.R   (R >= 4.2, Bioconductor qvalue >= 2.30)
# Debian: apt-get install r-base-core r-bioc-qvalue
suppressMessages(library(qvalue))
set.seed(20261121)
out <- list()
for (k in 1:16) {
  m <- c(25, 40, 100, 200, 500)[(k - 1) %% 5 + 1]
  f <- runif(1, 0, 0.7)
  n1 <- round(m * f)
  p <- c(runif(m - n1), rbeta(n1, 0.2, runif(1, 2, 30)))
  p <- sample(p)
  q <- tryCatch(qvalue(p), error = function(e) NULL)
  if (is.null(q)) {  # R stops (e.g. no p-value >= 0.95): hapexp falls back to BH
    out[[k]] <- data.frame(set = k, p = p, q = NA, pi0 = NA)
  } else {
    out[[k]] <- data.frame(set = k, p = p, q = q$qvalues, pi0 = q$pi0)
  }
}
d <- do.call(rbind, out)
write.table(format(d, digits = 17), "reference.tsv", sep = "\t", quote = FALSE, row.names = FALSE)
writeLines(c(R.version.string, paste("qvalue", packageVersion("qvalue"))), "versions.txt")
