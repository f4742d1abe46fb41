"""Inference engine, model-agnostic: device and precision switches (`device`), the Predictor
(`predictor`), batches rendered ahead (`batches`, `prefetch`), batch size from GPU memory
(`gpu_memory`), predict (`predict`), ISM (`ism`), the read-out conventions (`readout`) and
the precision budget and its audit (`precision`, `audit`)."""
