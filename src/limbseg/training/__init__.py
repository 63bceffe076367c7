"""limbseg.training"""
