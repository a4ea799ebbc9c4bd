"""quillrl.judges"""
