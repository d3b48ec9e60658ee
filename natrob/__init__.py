"""natrob"""
