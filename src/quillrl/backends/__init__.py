"""quillrl.backends"""
