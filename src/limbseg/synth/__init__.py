"""limbseg.synth"""
