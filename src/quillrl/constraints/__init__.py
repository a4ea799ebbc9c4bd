"""quillrl.constraints"""
