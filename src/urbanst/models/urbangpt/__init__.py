"""UrbanGPT: the gated dilated-convolution ST encoder (:mod:`.encoder`), the instruction with ST
placeholder tokens (:mod:`.instruction`) and the model with its frozen LM and two-branch head (:mod:`.model`)."""
