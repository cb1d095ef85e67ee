"""The poller: HTCondor demand (schedd) and pool (collector) sensing, published on the bus."""
