"""quillrl.eval"""
